variable "cluster_name" {
  description = "Name of the kind cluster."
  type        = string
  default     = "demo-platform"
}

variable "repository_url" {
  description = "SSH URL of the repository Flux reconciles and commits its components to (your fork), e.g. ssh://git@github.com/<you>/demo-platform.git."
  type        = string
}

variable "branch" {
  description = "Branch Flux follows."
  type        = string
  default     = "main"
}

variable "ssh_private_key_path" {
  description = "Deploy key with write access to repository_url (the bootstrap commits deploy/clusters/dev/flux-system)."
  type        = string
  default     = "~/.ssh/id_ed25519"
}
