package winlane

// KnownGaps are the tests the lane skips, each with what makes it fail
// under wine. A gap of Coffer's own is fixed and removed from here; a gap
// of wine is checked on a real Windows machine (docs/windows.md). Every
// run prints this list.
var KnownGaps = []KnownGap{
	// wine 8: SetSecurityInfo on a file handle answers "Access denied" even
	// to an elevated process holding WRITE_DAC, so a restore run elevated
	// (Owner: true) warns for every entry. The restore itself is checked.
	{pkg("agent/restorer"), "TestRandomTreesRoundTripWithEveryFileKind", wineDACL},
	{pkg("agent/prune"), "TestPruneFreesWhatForgottenPointsUsed", wineDACL},
	{pkg("agent/prune"), "TestPruneStoppedAtEveryWrite", wineDACL},
	{pkg("agent/prune"), "TestPruneStopsBeforeDeletingWhenABackupSavesMeanwhile", wineDACL},
	{pkg("agent/prune"), "TestBackupRefusedWhilePruneHoldsTheLockOrAfterItRemovedAPackItReuses", wineDACL},
	// wine 8: CreateSymbolicLink stores the Windows target text as a unix
	// symlink, which then resolves nowhere, and Lstat does not report it
	// as a link; the tests plant symlinks to attack the restore.
	{pkg("agent/restorer"), "TestHostileTreeWithoutDecodeCannotEscapeTheTarget", wineSymlink},
	{pkg("agent/restorer"), "TestMetadataIsNeverAppliedThroughAPlantedLink", wineSymlink},
	{pkg("agent/treediff"), "TestCompareTwoPointsOfATreeWithEveryFileKind", wineSymlink + " (os.Remove of treegen's dangling link fails)"},
	// Coffer's own test, found by the lane: point paths are checked with
	// filepath.Dir and filepath.Base, which on Windows turn "/" into "\";
	// path.Dir and path.Base are right for them. Its symlink case meets
	// wine's symlinks.
	{pkg("agent/find"), "TestFindAcrossPoints",
		"test: checks point paths (/C/…) with filepath.Dir/Base, which use \\ on Windows; use path.Dir/Base (and wine's symlinks)"},
	// Not understood yet; probably the symlink gap: two coffer.exe backups
	// of an unchanged folder without links give identical trees under wine
	// (coffer stats: 0 B unique), and this test's tree holds treegen's links.
	{pkg("agent/repostats"), "TestMeasure",
		"under wine two backups of treegen's unchanged tree differ in one tree blob (about 870 bytes unique); likely its symlinks (see above); check on Windows"},
}

const (
	wineDACL    = "wine 8: SetSecurityInfo on files is refused (Access denied), so elevated restores warn on every entry; check on Windows"
	wineSymlink = "wine 8: symlinks made by CreateSymbolicLink resolve nowhere and Lstat does not see them as links; check on Windows"
)

func pkg(p string) string { return "github.com/coffer-backup/coffer/" + p }
