package archiver

// ReadMixInterval lets tests look at the mix of files read more often.
var ReadMixInterval = &readMixInterval
