module campus-sim/docker-dns

go 1.24
