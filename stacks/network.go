package stacks

import (
	"encoding/binary"
	"fmt"
	"net"
)

// network parses an IPv4 CIDR that names a network (no host bits set).
func network(cidr string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("not an IPv4 CIDR")
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("host bits set; the network is %s", n)
	}
	return n, nil
}

// subnet returns the num-th subnet of parent that is newBits longer, as Terraform's cidrsubnet does.
func subnet(parent *net.IPNet, newBits, num int) string {
	ones, _ := parent.Mask.Size()
	base := binary.BigEndian.Uint32(parent.IP.To4())
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, base+uint32(num)<<(32-ones-newBits))
	return fmt.Sprintf("%s/%d", ip, ones+newBits)
}

func overlaps(a, b *net.IPNet) bool {
	return a.Contains(b.IP) || b.Contains(a.IP)
}
