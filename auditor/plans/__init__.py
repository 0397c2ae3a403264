"""The plan registry (rules/plans.yaml): what each compensation plan is supposed to pay."""
