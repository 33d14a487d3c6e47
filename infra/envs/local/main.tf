# dev on a laptop, as code: the kind cluster of modules/kind-cluster and Flux
# bootstrapped against a repository you can push to (your fork), reconciling
# deploy/clusters/dev. For a throwaway cluster from the working tree without
# any Git credentials, use `make cluster-up` instead (docs/design-decisions.md
# says why both exist).

module "cluster" {
  source = "../../modules/kind-cluster"

  name         = var.cluster_name
  worker_count = 2
}

provider "flux" {
  kubernetes = {
    host                   = module.cluster.endpoint
    client_certificate     = module.cluster.client_certificate
    client_key             = module.cluster.client_key
    cluster_ca_certificate = module.cluster.cluster_ca_certificate
  }
  git = {
    url    = var.repository_url
    branch = var.branch
    ssh = {
      username    = "git"
      private_key = file(pathexpand(var.ssh_private_key_path))
    }
  }
}

# modules/flux-bootstrap declares it; dev holds no encrypted secrets, so it
# creates nothing with it.
provider "kubernetes" {
  host                   = module.cluster.endpoint
  client_certificate     = module.cluster.client_certificate
  client_key             = module.cluster.client_key
  cluster_ca_certificate = module.cluster.cluster_ca_certificate
}

module "flux" {
  source = "../../modules/flux-bootstrap"

  environment = "dev"

  depends_on = [module.cluster]
}
