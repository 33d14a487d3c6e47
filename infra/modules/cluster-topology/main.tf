# The shape of a local cluster as plain data: nodes, port mappings and the
# containerd mirror for the laptop's registry. No provider is involved, so
# `tofu validate` and `tofu test` check this logic on any machine, offline;
# modules/kind-cluster turns it into a kind_cluster resource.

locals {
  # The control plane carries the ingress-ready label and the host ports, so
  # the Istio ingress gateway's NodePorts are reachable from the laptop.
  control_plane = {
    role   = "control-plane"
    labels = { "ingress-ready" = "true" }
    port_mappings = [
      for p in var.gateway_ports : {
        container_port = p.node_port
        host_port      = p.host_port
        listen_address = var.listen_address
        protocol       = "TCP"
      }
    ]
  }

  workers = [
    for i in range(var.worker_count) : {
      role          = "worker"
      labels        = { "topology.kubernetes.io/zone" = "zone-${i % 2}" }
      port_mappings = []
    }
  ]

  # containerd resolves `localhost:<port>/...` image references through the
  # registry container on the kind network, so an image pushed from the
  # laptop is pulled by the nodes under the same name.
  registry_host = "localhost:${var.registry.host_port}"
  containerd_config_patches = [
    <<-TOML
    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${local.registry_host}"]
      endpoint = ["http://${var.registry.name}:5000"]
    TOML
  ]
}
