#!/usr/bin/env python3
"""A lossy, slow Ethernet link in user space: forwards frames between two interfaces, each after ``--delay-ms`` and
each IPv4 frame dropped with probability ``--loss``. For bench_remote.py, run inside the namespace between the robot's
and the workstation's (as root: raw packet sockets).

Written here because this kernel has no netem (the usual ``tc qdisc ... netem delay 25ms loss 2%``); tc's tbf limits
the rate on the end interfaces. Frames are Ethernet frames (at most the MTU), so a 64 kB UDP datagram that IP splits
into 45 frames is lost when any of them is, as on a real link. Non-IPv4 frames (ARP) are delayed but never dropped.

A veth leaves UDP checksums to the receiving kernel (checksum offload), which frames forwarded through a raw socket
lose: ``--checksum-off DEV`` (run in an end namespace) makes DEV's sender compute them (ethtool -K DEV tx off, done
with the ioctl, as ethtool is not always installed).

SIGUSR1 takes the link down (every frame dropped), SIGUSR2 brings it up; SIGTERM ends it and writes counts to
``--stats`` (JSON).
"""
from __future__ import annotations

import argparse
import fcntl
import heapq
import json
import random
import select
import signal
import socket
import struct
import time
from pathlib import Path

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # our own sends, seen again on the socket
SO_RCVBUFFORCE = 33
IPV4 = b"\x08\x00"
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17  # set transmit checksum offload


def transmit_checksum_off(device: str) -> None:
    """``ethtool -K device tx off``: the kernel computes checksums before the frame leaves."""
    import ctypes

    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))  # struct ethtool_value
    request = struct.pack("16sP16x", device.encode(), ctypes.addressof(value))  # struct ifreq, ifr_data
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCETHTOOL, request)


class Relay:
    def __init__(self, left: str, right: str, delay_s: float, loss: float, seed: int) -> None:
        self.sockets = {}
        for name in (left, right):
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((name, 0))
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
            sock.setblocking(False)
            self.sockets[name] = sock
        self.peer = {left: self.sockets[right], right: self.sockets[left]}
        self.delay_s, self.loss, self.up = delay_s, loss, True
        self.random = random.Random(seed)
        self.queue: list = []  # (due, order, out socket, frame)
        self.order = 0
        self.counts = {f"{name} {what}": 0 for name in (left, right) for what in ("frames", "bytes", "dropped", "too big")}
        self.running = True

    def run(self) -> None:
        poller = select.poll()
        by_fd = {}
        for name, sock in self.sockets.items():
            poller.register(sock, select.POLLIN)
            by_fd[sock.fileno()] = name
        while self.running:
            timeout_ms = 50 if not self.queue else max(0, int((self.queue[0][0] - time.monotonic()) * 1000))
            for fd, _ in poller.poll(timeout_ms):
                self._receive(by_fd[fd])
            self._send_due()

    def _receive(self, name: str) -> None:
        sock = self.sockets[name]
        now = time.monotonic()
        while True:
            try:
                frame, address = sock.recvfrom(65536)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING:
                continue
            self.counts[f"{name} frames"] += 1
            self.counts[f"{name} bytes"] += len(frame)
            ip = frame[12:14] == IPV4
            if ip and (not self.up or self.random.random() < self.loss):
                self.counts[f"{name} dropped"] += 1
                continue
            self.order += 1
            heapq.heappush(self.queue, (now + self.delay_s, self.order, name, frame))

    def _send_due(self) -> None:
        now = time.monotonic()
        while self.queue and self.queue[0][0] <= now:
            _, _, name, frame = heapq.heappop(self.queue)
            try:
                self.peer[name].send(frame)
            except OSError:  # larger than the MTU (offloads) or the peer went away
                self.counts[f"{name} too big"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("left", nargs="?")
    parser.add_argument("right", nargs="?")
    parser.add_argument("--checksum-off", metavar="DEV", help="only turn DEV's transmit checksum offload off")
    parser.add_argument("--delay-ms", type=float, default=25.0, help="one way")
    parser.add_argument("--loss", type=float, default=0.02, help="probability that an IPv4 frame is dropped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", help="JSON file for the counts, written on SIGTERM")
    args = parser.parse_args()
    if args.checksum_off:
        transmit_checksum_off(args.checksum_off)
        return
    relay = Relay(args.left, args.right, args.delay_ms / 1000, args.loss, args.seed)

    def stop(*_):
        relay.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, lambda *_: setattr(relay, "up", False))
    signal.signal(signal.SIGUSR2, lambda *_: setattr(relay, "up", True))
    print("relay ready", flush=True)
    relay.run()
    if args.stats:
        Path(args.stats).write_text(json.dumps(relay.counts))


if __name__ == "__main__":
    main()
