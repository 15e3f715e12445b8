# hashpool-cln: the regtest stack and the end-to-end demo (state in .state/regtest/, logs in .state/regtest/logs/).
# The stack needs bitcoind, bitcoin-cli and lightningd (v26.06+) on PATH. Every recipe first creates or reuses the
# project's environment the way dev.py does (`python3 dev.py env`), so they work on a fresh clone.

venv := env_var_or_default("HASHPOOL_VENV", justfile_directory() / ".venv")
py := venv / "bin" / "python"
regtest := quote(py) + " -m hashpool_cln.regtest"

# list the recipes
default:
    @{{just_executable()}} --list --unsorted

# create (or reuse) the project's environment, .venv
env:
    @python3 {{quote(justfile_directory() / "dev.py")}} env --quiet

# start bitcoind, the mint (with its chain watcher), the pool's and the miner's nodes, and a channel between them; pass 'debug' for debug logging
up mode="": env
    @if [ "{{mode}}" = "debug" ]; then \
        HASHPOOL_LOG_LEVEL=DEBUG {{regtest}} up; \
    elif [ -z "{{mode}}" ]; then \
        {{regtest}} up; \
    else \
        echo "Error: mode must be empty or 'debug'" >&2; exit 2; \
    fi

# stop everything the stack started
down: env
    {{regtest}} down

# which processes run, the mint's URL and receive address
status: env
    {{regtest}} status

# the main job: a miner wallet sweeps ehash of simulated shares, a reward settles the epoch, the wallet redeems over commando into a BOLT12 offer and the operator into a BOLT11 invoice
demo: env
    {{regtest}} demo

# delete state: cashu (mint data, desk database and seed, miner's wallet; stack stopped), wallet (miner's wallet alone), regtest (everything; stack stopped), logs
clean TYPE: env
    {{regtest}} clean {{quote(TYPE)}}

# an sqlite shell on a database (TYPE: desk: the pool node's desk | mint: the reference mint | wallet: the miner's wallet)
db TYPE: env
    {{regtest}} db {{quote(TYPE)}}

# mine COUNT blocks (to bitcoind's wallet; `just generate-blocks-to-mint COUNT` pays the mint)
generate-blocks COUNT: env
    {{regtest}} generate-blocks {{quote(COUNT)}}

# mine COUNT blocks whose coinbase pays the mint: each closes an epoch
generate-blocks-to-mint COUNT: env
    {{regtest}} generate-blocks --to-mint {{quote(COUNT)}}

# regenerate the man pages (doc/man) from the methods' schemas (doc/schemas)
man: env
    {{quote(py)}} {{quote(justfile_directory() / "doc" / "genman.py")}}

# redeem an ehash TOKEN into an INVOICE (BOLT11) or offer (BOLT12) through the pool node's hashpool-redeem
redeem TOKEN INVOICE: env
    {{regtest}} redeem {{quote(TOKEN)}} {{quote(INVOICE)}}
