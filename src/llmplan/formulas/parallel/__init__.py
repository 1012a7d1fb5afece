"""One module per kind of parallelism: what each rank of a layout holds.

- `tensor`: tensor (and sequence) parallel splits of every linear layer, kv-head replication;
- `pipeline`: which decoder layers, embeddings and head each pipeline stage owns;
- `data`: ZeRO / FSDP sharding over the data-parallel group (context-parallel ranks included);
- `context`: the sequence split of context parallelism;
- `expert`: routed experts over the expert-parallel group.
"""
