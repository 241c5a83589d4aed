"""Outputs of the tools the platform backends run, in the formats those OSes print.

The macOS and Windows backends do not run on the test machines; these texts stand
for the tools (``RecordingTools`` answers with them), so that their parsing and
command lines are tested by contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from deskside.agent.diagnostics.commands import CommandResult

# macOS: route -n get default
MAC_ROUTE_GET = """\
   route to: default
destination: default
       mask: default
    gateway: 192.168.1.1
  interface: en0
      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING,GLOBAL>
 recvpipe  sendpipe  ssthresh  rtt,msec    rttvar  hopcount      mtu     expire
       0         0         0         0         0         0      1500         0
"""

# macOS: route -n get default, with no default route.
MAC_ROUTE_GET_NONE = "route: writing to routing socket: not in table\n"

# macOS: scutil --dns (one server is listed by two resolvers).
MAC_SCUTIL_DNS = """\
DNS configuration

resolver #1
  search domain[0] : example.org
  nameserver[0] : 192.168.1.1
  nameserver[1] : fd00::1
  if_index : 6 (en0)
  flags    : Request A records, Request AAAA records
  reach    : 0x00020002 (Reachable,Directly Reachable Address)

resolver #2
  domain   : local
  options  : mdns
  timeout  : 5
  flags    : Request A records, Request AAAA records
  reach    : 0x00000000 (Not Reachable)
  order    : 300000

DNS configuration (for scoped queries)

resolver #1
  search domain[0] : example.org
  nameserver[0] : 192.168.1.1
  if_index : 6 (en0)
  flags    : Scoped, Request A records
  reach    : 0x00020002 (Reachable,Directly Reachable Address)
"""

# macOS: sysctl -n machdep.cpu.brand_string
MAC_CPU = "Apple M2 Pro\n"

# macOS: ping -n -c 1 -W 1000 192.168.1.1
MAC_PING = """\
PING 192.168.1.1 (192.168.1.1): 56 data bytes
64 bytes from 192.168.1.1: icmp_seq=0 ttl=64 time=3.215 ms

--- 192.168.1.1 ping statistics ---
1 packets transmitted, 1 packets received, 0.0% packet loss
round-trip min/avg/max/stddev = 3.215/3.215/3.215/0.000 ms
"""

# Windows: route print -4 0.0.0.0 (two default routes; the lower metric wins).
WINDOWS_ROUTE_PRINT = """\
===========================================================================
Interface List
 12...00 15 5d 01 02 03 ......Microsoft Hyper-V Network Adapter
  7...00 0c 29 aa bb cc ......Intel(R) Wi-Fi 6 AX201 160MHz
  1...........................Software Loopback Interface 1
===========================================================================

IPv4 Route Table
===========================================================================
Active Routes:
Network Destination        Netmask          Gateway       Interface  Metric
          0.0.0.0          0.0.0.0         10.0.0.1       10.0.0.50     35
          0.0.0.0          0.0.0.0      192.168.1.1    192.168.1.23     25
===========================================================================
Persistent Routes:
  None
"""

# Windows: ping -n 1 -w 1000 192.168.1.1
WINDOWS_PING = """\

Pinging 192.168.1.1 with 32 bytes of data:
Reply from 192.168.1.1: bytes=32 time<1ms TTL=64

Ping statistics for 192.168.1.1:
    Packets: Sent = 1, Received = 1, Lost = 0 (0% loss),
Approximate round trip times in milli-seconds:
    Minimum = 0ms, Maximum = 0ms, Average = 0ms
"""

# Windows: ping to a gateway that does not answer (exit code 0 all the same).
WINDOWS_PING_UNREACHABLE = """\

Pinging 192.168.1.1 with 32 bytes of data:
Reply from 192.168.1.23: Destination host unreachable.

Ping statistics for 192.168.1.1:
    Packets: Sent = 1, Received = 1, Lost = 0 (0% loss),
"""

# Linux (iputils): ping -n -c 1 -W 1 192.0.2.1
LINUX_PING = """\
PING 192.0.2.1 (192.0.2.1) 56(84) bytes of data.
64 bytes from 192.0.2.1: icmp_seq=1 ttl=64 time=0.045 ms

--- 192.0.2.1 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.045/0.045/0.045/0.000 ms
"""


def answers(outputs: Mapping[str, str]) -> Callable[[tuple[str, ...]], CommandResult]:
    """Answer a command line with the output recorded for its tool (``argv[0]``).

    A tool without a recording exits with 1 and prints nothing.
    """

    def answer(argv: tuple[str, ...]) -> CommandResult:
        output = outputs.get(argv[0])
        return CommandResult(1, "", "") if output is None else CommandResult(0, output, "")

    return answer
