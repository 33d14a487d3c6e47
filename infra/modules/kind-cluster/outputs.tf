output "kubeconfig" {
  description = "Kubeconfig of the cluster (sensitive: it holds the admin client key)."
  value       = kind_cluster.this.kubeconfig
  sensitive   = true
}

output "endpoint" {
  description = "API server URL."
  value       = kind_cluster.this.endpoint
}

output "client_certificate" {
  description = "Admin client certificate (PEM)."
  value       = kind_cluster.this.client_certificate
  sensitive   = true
}

output "client_key" {
  description = "Admin client key (PEM)."
  value       = kind_cluster.this.client_key
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "CA certificate of the API server (PEM)."
  value       = kind_cluster.this.cluster_ca_certificate
}

output "registry_host" {
  description = "Image prefix that the laptop pushes to and the nodes pull from."
  value       = module.topology.registry_host
}

output "gateway_urls" {
  description = "The ingress gateway from the laptop."
  value       = module.topology.gateway_urls
}
