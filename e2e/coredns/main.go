// Command coredns is the e2e cluster's DNS: CoreDNS with only the plugins a cluster's
// kube-dns Service needs, so that it builds in a fraction of the time of the full server
// (whose plugin list pulls in every cloud SDK). Built by ../cluster.sh into a local image.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order plugins see a query in; CoreDNS's own list, cut to the plugins imported above.
var directives = []string{
	"errors",
	"log",
	"health",
	"ready",
	"cache",
	"loadbalance",
	"kubernetes",
}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
