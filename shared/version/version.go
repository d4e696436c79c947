// Package version identifies a build of Coffer. The agent and the control
// plane report it to each other so that either can refuse a peer it is not
// compatible with.
package version

import "runtime/debug"

// Version is set at link time (-ldflags "-X .../version.Version=v1.2.3");
// a build without it reports the module version or "dev".
var Version = ""

// String is the version of this build.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
