"""Addresses a worker must never fetch from: IANA's special-purpose ranges, whatever Python says."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IANA's IPv4 and IPv6 special-purpose address registries plus multicast, refused whatever
# `ipaddress.is_global` says: its tables differ between Python patch releases (3.11.7 calls
# 6to4 2002:7f00:1:: and site-local fec0::1 global).
SPECIAL_PURPOSE = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # limited broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible (deprecated)
        "64:ff9b::/96",  # NAT64: leads to the IPv4 address embedded in it
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "100:0:0:1::/64",  # dummy prefix
        "2001::/23",  # IETF protocol assignments, Teredo
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: leads to the IPv4 address embedded in it
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 segment identifiers
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)


def is_forbidden(ip: IPAddress) -> bool:
    """True for any address a worker must never be steered to (cloud metadata, LAN, localhost).

    IPv4-mapped IPv6 (::ffff:a.b.c.d) is judged by its IPv4 address, where it leads. NAT64
    and 6to4 are refused whole, whatever IPv4 address they embed: a gateway we do not
    control would pick the destination (the stdlib already calls 64:ff9b::/96 reserved).
    """
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 reaches 127.0.0.1
        return is_forbidden(mapped)
    return (
        any(ip in network for network in SPECIAL_PURPOSE)
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )
