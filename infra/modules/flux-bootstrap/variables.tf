variable "environment" {
  description = "dev, staging or production: Flux reconciles deploy/clusters/<environment>."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production (a folder of deploy/clusters)."
  }
}

variable "flux_version" {
  description = "Flux distribution version installed by the bootstrap; matches the CRDs that `make verify` validates against."
  type        = string
  default     = "v2.9.4"
}

variable "interval" {
  description = "How often Flux reconciles its own components."
  type        = string
  default     = "10m"
}
