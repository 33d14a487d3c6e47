# staging or production on AWS: a VPC over three zones, an EKS cluster with
# one managed node group, and Flux bootstrapped at deploy/clusters/<environment>.
# Apply once per environment, each with its own state key and tfvars.

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project     = "demo-platform"
      environment = var.environment
      managed-by  = "opentofu"
    }
  }
}

locals {
  name = "demo-platform-${var.environment}"
  # Zones are named, not looked up: a lookup grows when AWS adds a zone, and
  # the subnets would move with it.
  zones = [for suffix in var.zone_suffixes : "${var.region}${suffix}"]
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.21.0"

  name = local.name
  cidr = var.vpc_cidr
  azs  = local.zones

  private_subnets = [for i, _ in local.zones : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets  = [for i, _ in local.zones : cidrsubnet(var.vpc_cidr, 8, 48 + i)]

  enable_nat_gateway   = true
  single_nat_gateway   = var.environment != "production"
  enable_dns_hostnames = true

  enable_flow_log                      = true
  create_flow_log_cloudwatch_log_group = true
  create_flow_log_cloudwatch_iam_role  = true

  public_subnet_tags  = { "kubernetes.io/role/elb" = 1 }
  private_subnet_tags = { "kubernetes.io/role/internal-elb" = 1 }
}

module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "20.37.1"

  cluster_name    = local.name
  cluster_version = var.kubernetes_version

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  # The API server is reachable from the allowed networks only; the nodes
  # reach it privately.
  cluster_endpoint_public_access       = true
  cluster_endpoint_public_access_cidrs = var.api_allowed_cidrs
  cluster_endpoint_private_access      = true

  enable_cluster_creator_admin_permissions = true
  cluster_enabled_log_types                = ["api", "audit", "authenticator"]

  eks_managed_node_groups = {
    default = {
      instance_types = var.node_instance_types
      min_size       = var.environment == "production" ? 3 : 2
      max_size       = var.environment == "production" ? 6 : 3
      desired_size   = var.environment == "production" ? 3 : 2
    }
  }
}

# Short-lived credentials: the provider asks `aws eks get-token` at each run
# instead of storing a token in state.
provider "flux" {
  kubernetes = {
    host                   = module.eks.cluster_endpoint
    cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
    }
  }
  git = {
    url    = var.repository_url
    branch = "main"
    ssh = {
      username    = "git"
      private_key = var.git_ssh_private_key
    }
  }
}

# The same short-lived credentials, for the sops-age Secret the bootstrap creates.
provider "kubernetes" {
  host                   = module.eks.cluster_endpoint
  cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
  }
}

module "flux" {
  source = "../../modules/flux-bootstrap"

  environment  = var.environment
  sops_age_key = var.sops_age_key

  depends_on = [module.eks]
}
