output "nodes" {
  description = "Every node in order, control plane first: role, labels and host port mappings."
  value       = concat([local.control_plane], local.workers)
}

output "containerd_config_patches" {
  description = "containerd configuration that sends the local registry's host name to the registry container."
  value       = local.containerd_config_patches
}

output "registry_host" {
  description = "Image prefix for the laptop and the nodes alike, e.g. localhost:5001."
  value       = local.registry_host
}

output "gateway_urls" {
  description = "URLs of the ingress gateway from the laptop, by scheme."
  value = {
    for p in var.gateway_ports :
    (p.node_port == 30443 ? "https" : "http") => "${p.node_port == 30443 ? "https" : "http"}://${var.listen_address}:${p.host_port}"
  }
}
