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

  # Volumes: Prometheus, Alertmanager, Loki, Jaeger's Badger, Grafana and
  # PostgreSQL claim them without naming a class. EKS provisions EBS only
  # through this driver (the in-tree provisioner is gone), and marks no
  # class as default: kubernetes_storage_class_v1.gp3 below is.
  cluster_addons = {
    aws-ebs-csi-driver = {
      service_account_role_arn = module.ebs_csi_irsa.iam_role_arn
    }
  }

  # Admission webhooks are called by the control plane on the pods' ports.
  # The module opens 443, 4443, 6443, 8443, 9443 and 10250 (Kyverno,
  # CloudNativePG, the Prometheus Operator); istiod's sidecar injector and
  # validation webhook listen on 15017.
  node_security_group_additional_rules = {
    ingress_istiod_webhook = {
      description                   = "Control plane to istiod's admission webhooks"
      protocol                      = "tcp"
      from_port                     = 15017
      to_port                       = 15017
      type                          = "ingress"
      source_cluster_security_group = true
    }
  }
}

# The EBS CSI driver's controller creates and attaches volumes with this role.
module "ebs_csi_irsa" {
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks"
  version = "5.48.0"

  role_name             = "${local.name}-ebs-csi"
  attach_ebs_csi_policy = true

  oidc_providers = {
    main = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:ebs-csi-controller-sa"]
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

# The default class: every claim that names none (all of the platform's) gets
# an encrypted gp3 volume in its pod's zone.
resource "kubernetes_storage_class_v1" "gp3" {
  metadata {
    name = "gp3"
    annotations = {
      "storageclass.kubernetes.io/is-default-class" = "true"
    }
  }

  storage_provisioner    = "ebs.csi.aws.com"
  volume_binding_mode    = "WaitForFirstConsumer"
  allow_volume_expansion = true
  reclaim_policy         = "Delete"
  parameters = {
    type      = "gp3"
    encrypted = "true"
  }

  depends_on = [module.eks]
}

module "flux" {
  source = "../../modules/flux-bootstrap"

  environment  = var.environment
  sops_age_key = var.sops_age_key

  # The platform's claims need the default StorageClass when Flux applies them.
  depends_on = [module.eks, kubernetes_storage_class_v1.gp3]
}
