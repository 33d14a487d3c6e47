terraform {
  required_version = ">= 1.8.0"

  required_providers {
    flux = {
      source  = "fluxcd/flux"
      version = "1.7.6"
    }
  }

  # A laptop cluster's state stays on the laptop.
  backend "local" {
    path = "terraform.tfstate"
  }
}
