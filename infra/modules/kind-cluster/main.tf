# A kind cluster for a laptop: one control plane, two workers, the ingress
# gateway's ports on loopback, and a registry container that both the laptop
# (localhost:5001) and the nodes can reach, so images built locally need no
# remote registry.

module "topology" {
  source = "../cluster-topology"

  worker_count   = var.worker_count
  gateway_ports  = var.gateway_ports
  listen_address = "127.0.0.1"
  registry       = { name = var.registry_name, host_port = var.registry_port }
}

# kind creates the `kind` Docker network with its first cluster; the
# registry joins it after the cluster exists.
resource "kind_cluster" "this" {
  name            = var.name
  node_image      = var.node_image
  wait_for_ready  = true
  kubeconfig_path = var.kubeconfig_path

  kind_config {
    kind        = "Cluster"
    api_version = "kind.x-k8s.io/v1alpha4"

    containerd_config_patches = module.topology.containerd_config_patches

    dynamic "node" {
      for_each = module.topology.nodes
      content {
        role   = node.value.role
        labels = node.value.labels

        dynamic "extra_port_mappings" {
          for_each = node.value.port_mappings
          content {
            container_port = extra_port_mappings.value.container_port
            host_port      = extra_port_mappings.value.host_port
            listen_address = extra_port_mappings.value.listen_address
            protocol       = extra_port_mappings.value.protocol
          }
        }
      }
    }
  }
}

resource "docker_image" "registry" {
  name         = var.registry_image
  keep_locally = true
}

resource "docker_container" "registry" {
  name    = var.registry_name
  image   = docker_image.registry.image_id
  restart = "always"

  ports {
    internal = 5000
    external = var.registry_port
    ip       = "127.0.0.1"
  }

  networks_advanced {
    name = "kind"
  }

  depends_on = [kind_cluster.this]
}
