// Command coredns is CoreDNS with only the plugins the one-node cluster of
// tests/cluster configures (errors, health, ready, kubernetes, cache): the
// full plugin set pulls in every cloud provider's SDK and made this tool the
// slowest of the node's to build cold. The plugins register themselves when
// imported, as in CoreDNS's own core/plugin.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
