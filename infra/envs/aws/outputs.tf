output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name <this>)."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "API server URL."
  value       = module.eks.cluster_endpoint
}

output "vpc_id" {
  description = "The VPC of the cluster."
  value       = module.vpc.vpc_id
}

output "flux_path" {
  description = "Folder of the repository this cluster reconciles."
  value       = module.flux.path
}
