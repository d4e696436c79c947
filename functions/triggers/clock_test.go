package triggers

import "time"

// waitLimit bounds every wait on a channel in these tests.
const waitLimit = 10 * time.Second
