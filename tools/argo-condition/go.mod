module demo-platform/tools/argo-condition

go 1.26.8

tool demo-platform/tools/argo-condition

require github.com/expr-lang/expr v1.17.8
