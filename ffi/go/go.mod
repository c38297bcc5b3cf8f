module github.com/lessor-dev/lessor/ffi/go

go 1.19
