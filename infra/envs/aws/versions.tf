terraform {
  required_version = ">= 1.8.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
    flux = {
      source  = "fluxcd/flux"
      version = "1.7.6"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "2.38.0"
    }
  }

  # Remote state, one key per environment, locked with S3's conditional
  # writes (no DynamoDB table). The bucket is created once, outside this
  # configuration; see backend.hcl.example and docs/releasing.md.
  backend "s3" {}
}
