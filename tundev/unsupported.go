//go:build !linux && !darwin

package tundev

// The node has TUN drivers for Linux and darwin only, the two platforms CI
// builds (scripts/test.sh). Elsewhere the build stops here, naming the
// reason, instead of producing a node that starts and cannot open its
// device.
const _ = tundev_has_drivers_for_linux_and_darwin_only
