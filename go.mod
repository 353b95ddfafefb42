module github.com/archipelago-go/archipelago

go 1.26.0

require (
	github.com/ceph/go-ceph v0.34.0
	github.com/edsrzf/mmap-go v1.2.0
	github.com/sirupsen/logrus v1.10.2
	golang.org/x/sys v0.50.0
)
