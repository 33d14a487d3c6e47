output "path" {
  description = "The folder of the repository that this cluster reconciles."
  value       = flux_bootstrap_git.this.path
}

output "repository_files" {
  description = "Files the bootstrap committed to the repository."
  value       = flux_bootstrap_git.this.repository_files
}
