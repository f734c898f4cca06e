# Shared set-up of the launchers (sourced by dist_train.sh, dist_test.sh and
# slurm_train.sh): the repository root first on PYTHONPATH, the interpreter
# (PYTHON, default python), and torchrun's rendezvous settings (NNODES,
# NODE_RANK, PORT, MASTER_ADDR).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
export PYTHONPATH="$ROOT:${PYTHONPATH:-}"

# torchrun NPROC TOOL [ARGS...]: NPROC processes of tools/TOOL on this node.
torchrun_tool() {
    local nproc=$1 tool=$2
    "$PYTHON" -m torch.distributed.run \
        --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
        --nproc_per_node="$nproc" --master_port="$PORT" \
        "$ROOT/tools/$tool" "${@:3}"
}
