output "kubeconfig_context" {
  description = "kubectl context of the cluster."
  value       = "kind-${var.cluster_name}"
}

output "registry_host" {
  description = "Push images here from the laptop; the nodes pull them under the same name."
  value       = module.cluster.registry_host
}

output "gateway_urls" {
  description = "The app through the Istio ingress gateway."
  value       = module.cluster.gateway_urls
}

output "flux_path" {
  description = "Folder of the repository this cluster reconciles."
  value       = module.flux.path
}
