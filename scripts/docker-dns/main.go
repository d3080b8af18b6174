// docker-dns answers the DNS queries of the Docker engine that scripts/docker.sh starts, so that
// no container waits on a name it cannot resolve:
//
//   - a query from a container (any source address that is not one of this machine's own) gets
//     NXDOMAIN at once. Docker's embedded DNS resolves the compose services' names itself and
//     forwards only the names it does not know — a stopped service, or anything beyond the
//     machine — here; without an answer the lookup hangs for 20 s (measured), and Order would
//     answer 504 after its timeout instead of 503 at once;
//   - a query from the machine itself (a build step run with --network host, such as apt-get in
//     the broker stand-ins' Dockerfiles) is relayed to the machine's own resolver and its answer
//     returned.
//
// Usage: docker-dns LISTEN_ADDR UPSTREAM_ADDR (e.g. 172.17.0.1:53 10.0.0.53:53). It prints one
// line when it is listening and serves until killed.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: docker-dns LISTEN_ADDR UPSTREAM_ADDR")
		os.Exit(2)
	}
	listen, err := net.ResolveUDPAddr("udp", os.Args[1])
	fail(err, "listen address")
	upstream, err := net.ResolveUDPAddr("udp", os.Args[2])
	fail(err, "upstream address")
	conn, err := net.ListenUDP("udp", listen)
	fail(err, "listening")
	fmt.Printf("docker-dns: listening on %s, relaying this machine's own queries to %s\n", listen, upstream)
	buf := make([]byte, 4096)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		query := append([]byte(nil), buf[:n]...)
		if own(from.IP) {
			go relay(conn, from, query, upstream)
		} else if reply := nxdomain(query); reply != nil {
			conn.WriteToUDP(reply, from)
		}
	}
}

func fail(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker-dns: %s: %v\n", what, err)
		os.Exit(1)
	}
}

// own tells whether ip is one of this machine's addresses (so the query comes from the host's
// network namespace, not from a container).
func own(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// nxdomain turns a query into its "no such name" reply: the same id and question, the QR and
// RA bits set, RCODE 3, no records. Anything too short to be a query gets no reply.
func nxdomain(query []byte) []byte {
	if len(query) < 12 {
		return nil
	}
	reply := append([]byte(nil), query...)
	reply[2] = 0x80 | (query[2] & 0x79) // QR, the query's opcode and RD; not AA, not TC
	reply[3] = 0x80 | 3                 // RA, RCODE NXDOMAIN
	// The first question (as asked), no answer, authority or additional records (an EDNS OPT
	// record of the query is dropped with them).
	reply[4], reply[5] = 0, 1
	for i := 6; i < 12; i++ {
		reply[i] = 0
	}
	end := questionEnd(reply)
	if end < 0 {
		return nil
	}
	return reply[:end]
}

// questionEnd is the offset just past the first question (name, type, class), or -1.
func questionEnd(msg []byte) int {
	i := 12
	for i < len(msg) {
		l := int(msg[i])
		if l == 0 {
			i++
			break
		}
		if l&0xC0 != 0 {
			return -1 // a question's name is never compressed
		}
		i += 1 + l
	}
	if i+4 > len(msg) {
		return -1
	}
	return i + 4
}

func relay(conn *net.UDPConn, from *net.UDPAddr, query []byte, upstream *net.UDPAddr) {
	up, err := net.DialUDP("udp", nil, upstream)
	if err != nil {
		return
	}
	defer up.Close()
	up.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := up.Write(query); err != nil {
		return
	}
	buf := make([]byte, 4096)
	n, err := up.Read(buf)
	if err != nil {
		return
	}
	conn.WriteToUDP(buf[:n], from)
}
