# Flux bootstrap of one environment: installs the controllers (by default
# the manifests embedded in the provider, so nothing is fetched), commits
# them to deploy/clusters/<environment>/flux-system and points Flux at that
# path. The calling root configures the `flux` provider: which cluster
# (kubernetes) and which repository with which credentials (git).

resource "flux_bootstrap_git" "this" {
  # The manifests built into the provider (no download at apply time), unless
  # a specific Flux version is asked for.
  embedded_manifests = var.flux_version == null
  version            = var.flux_version
  path               = "deploy/clusters/${var.environment}"
  interval           = var.interval

  # Image automation for dev and staging (deploy/apps/<env>/image-automation.yaml)
  # needs the two image controllers; production only changes through a PR.
  components_extra = var.environment == "production" ? [] : [
    "image-reflector-controller",
    "image-automation-controller",
  ]

  # Keep flux-system (and the sops-age Secret below) when Flux is removed.
  keep_namespace = true
}

# The age private key the `apps` Kustomization decrypts
# deploy/apps/<environment>/secrets with (its decryption.secretRef names
# flux-system/sops-age). Without it the apps never reconcile: Flux retries
# every minute until this exists. dev has no encrypted secrets.
resource "kubernetes_secret_v1" "sops_age" {
  count = var.sops_age_key == null ? 0 : 1

  metadata {
    name      = "sops-age"
    namespace = "flux-system"
  }

  data = {
    "age.agekey" = var.sops_age_key
  }

  depends_on = [flux_bootstrap_git.this]
}
