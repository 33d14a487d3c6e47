terraform {
  required_version = ">= 1.8.0"

  required_providers {
    flux = {
      source  = "fluxcd/flux"
      version = "1.7.6"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "2.38.0"
    }
  }
}
