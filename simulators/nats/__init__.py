"""A real NATS cluster with JetStream (Debian ``nats-server``) on loopback, for tests,
benchmarks and demos: nodes on ephemeral ports, routes between them, a store directory
each, and SIGKILL / restart of a single node for fault injection."""

from simulators.nats.cluster import NatsCluster, NatsNode, nats_server_binary

__all__ = ["NatsCluster", "NatsNode", "nats_server_binary"]
