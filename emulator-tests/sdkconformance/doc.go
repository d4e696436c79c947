// Package sdkconformance runs the emulators' conformance tests through a
// second real client, the JavaScript Azure SDKs (@azure/service-bus and
// @azure/keyvault-secrets, pinned in emulator-tests/package.json), beside the
// Go SDK tests in emulator-tests/servicebus and emulator-tests/keyvault.
//
// go test starts the emulators, then runs each js/*.test.js file with node's
// test runner, the endpoints in its environment, and fails with node's
// output. Without node or the npm packages it fails in one line that says
// what to install.
package sdkconformance
