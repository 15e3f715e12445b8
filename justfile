# hashpool-cln: the regtest stack and the end-to-end demo (state in .state/regtest/, logs in .state/regtest/logs/).
# Needs bitcoind, bitcoin-cli and lightningd (v26.06+) on PATH and the project's .venv (python3 dev.py lint makes it).

py := justfile_directory() / ".venv/bin/python"
regtest := py + " -m hashpool_cln.regtest"

# list the recipes
default:
    @{{just_executable()}} --list --unsorted

# start bitcoind, the mint (with its chain watcher), the pool's and the miner's nodes, and a channel between them
up:
    {{regtest}} up

# stop everything the stack started
down:
    {{regtest}} down

# which processes run, the mint's URL and receive address
status:
    {{regtest}} status

# the main job: ehash from simulated shares, a reward to the mint, redemptions into a BOLT11 invoice and a BOLT12 offer
demo:
    {{regtest}} demo

# delete state: cashu (mint and desk databases), regtest (everything, stack stopped), logs
clean TYPE:
    {{regtest}} clean {{TYPE}}

# an sqlite shell on the desk's or the mint's database (TYPE: desk | mint)
db TYPE:
    {{regtest}} db {{TYPE}}

# mine COUNT blocks (to the wallet; `just generate-blocks-to-mint COUNT` pays the mint)
generate-blocks COUNT:
    {{regtest}} generate-blocks {{COUNT}}

# mine COUNT blocks whose coinbase pays the mint: each closes an epoch
generate-blocks-to-mint COUNT:
    {{regtest}} generate-blocks --to-mint {{COUNT}}

# redeem an ehash TOKEN into an INVOICE (BOLT11) or offer (BOLT12) through the pool node's hashpool-redeem
redeem TOKEN INVOICE:
    {{regtest}} redeem {{quote(TOKEN)}} {{quote(INVOICE)}}
