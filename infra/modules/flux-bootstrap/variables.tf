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
