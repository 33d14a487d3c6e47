variable "environment" {
  description = "dev, staging or production: Flux reconciles deploy/clusters/<environment>."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production (a folder of deploy/clusters)."
  }
}

variable "flux_version" {
  description = "Flux version to install (e.g. v2.9.4, downloaded at apply time); null installs the one embedded in the pinned provider."
  type        = string
  default     = null
}

variable "interval" {
  description = "How often Flux reconciles its own components."
  type        = string
  default     = "10m"
}

variable "sops_age_key" {
  description = "The environment's age private key (AGE-SECRET-KEY-1...), stored as flux-system/sops-age for the apps Kustomization's SOPS decryption. Required for staging and production, whose deploy/apps/<env>/secrets are encrypted to it (.sops.yaml)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.environment == "dev" || var.sops_age_key != null
    error_message = "staging and production decrypt their secrets with flux-system/sops-age: set sops_age_key (docs/bootstrap.md)."
  }
}
