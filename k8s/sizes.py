"""T-shirt sizes for agent pods. (Owned by the k8s workload work; this is the seed table.)"""
SIZES = {"S": None, "M": None, "L": None}
