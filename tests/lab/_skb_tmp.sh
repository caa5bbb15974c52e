L2='p __netif_receive_skb_core.constprop.0 proto=@(struct iphdr *)l3%0->protocol ip_src=@(struct iphdr *)l3%0->saddr ip_dst=@(struct iphdr *)l3%0->daddr data=X@(struct iphdr *)l3%0->sdata[1] a=%di'
(python3 tests/lab/_ping4_tmp.py 50; echo pinged) & python3 -m undertow trace -v --backend bpf --duration 60 "$L2" "$L2 f:proto==1" "$L2 f:ip_src==127.0.0.1"
