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

  # The SOPS age key must exist before the apps Kustomization decrypts.
  keep_namespace = true
}
