variable "environment" {
  description = "staging or production: names the cluster and picks deploy/clusters/<environment>."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production (dev runs on kind: envs/local)."
  }
}

variable "region" {
  description = "AWS region of the VPC and the cluster."
  type        = string
  default     = "eu-central-1"
}

variable "zone_suffixes" {
  description = "Availability zones of the VPC, as suffixes of the region (three, for a quorum that survives one zone)."
  type        = list(string)
  default     = ["a", "b", "c"]
}

variable "vpc_cidr" {
  description = "Address range of the VPC; private subnets take /20s, public ones /24s of it."
  type        = string
  default     = "10.40.0.0/16"
}

variable "kubernetes_version" {
  description = "EKS control plane version; matches what `make verify` validates against."
  type        = string
  default     = "1.33"
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["m7i.large"]
}

variable "api_allowed_cidrs" {
  description = "Networks allowed to reach the public API endpoint (the operators' and CI's egress). No default: opening it to the world is a decision, not an accident."
  type        = list(string)
}

variable "repository_url" {
  description = "SSH URL of this repository, e.g. ssh://git@github.com/<org>/demo-platform.git."
  type        = string
}

variable "git_ssh_private_key" {
  description = "Deploy key with write access (the bootstrap commits flux-system); pass it through TF_VAR_git_ssh_private_key from a secret store, never a file in git."
  type        = string
  sensitive   = true
}

variable "sops_age_key" {
  description = "The environment's age private key for SOPS (from the team's secret store, e.g. TF_VAR_sops_age_key); never in a tfvars file."
  type        = string
  sensitive   = true
}
