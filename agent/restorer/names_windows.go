package restorer

// noFollow is 0: Windows has no O_NOFOLLOW, but O_CREATE|O_EXCL (CREATE_NEW)
// fails on any existing entry, a link included.
const noFollow = 0
