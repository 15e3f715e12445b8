// cashu-ts as an independent wallet against a Cashu mint: one scenario per run.
//
//     node driver.mjs <scenario>   < job.json   > answer.json
//
// The job (stdin) always has "mint" (base URL) and "unit"; each scenario reads its own fields. The answer
// (stdout) is one JSON object: the scenario's result, or {"error": {...}} when cashu-ts threw, so the caller
// sees exactly what a wallet app would (the error class, the mint's `code`, the HTTP status); "warnings" lists
// what cashu-ts logged as a warning (a fallback it had to take, for one).
// Amounts leave as plain integers, proofs in the NUT-00 JSON shape.

import {
  Amount,
  HttpResponseError,
  MintOperationError,
  NetworkError,
  Keyset,
  Wallet,
  deriveKeysetId,
  getDecodedToken,
  getEncodedToken,
  hasValidDleq,
  schnorrSignMessage,
} from '@cashu/cashu-ts';
import { pbkdf2Sync, randomBytes } from 'node:crypto';

const hexToBytes = (hex) => Uint8Array.from(Buffer.from(hex, 'hex'));
const num = (amount) => Number(Amount.from(amount).toBigInt());

function proofJson(p) {
  const out = { id: p.id, amount: num(p.amount), secret: p.secret, C: p.C };
  if (p.dleq) out.dleq = { e: p.dleq.e, s: p.dleq.s, r: p.dleq.r };
  if (p.witness !== undefined) out.witness = typeof p.witness === 'string' ? p.witness : JSON.stringify(p.witness);
  return out;
}

const proofsJson = (proofs) => proofs.map(proofJson);

// The class cashu-ts threw, by its exported name (the bundle's own class names are minified).
function errorName(e) {
  if (e instanceof MintOperationError) return 'MintOperationError';
  if (e instanceof HttpResponseError) return 'HttpResponseError';
  if (e instanceof NetworkError) return 'NetworkError';
  return e instanceof Error ? 'Error' : typeof e;
}

function errorJson(e) {
  return {
    name: errorName(e),
    message: String(e?.message ?? e),
    code: typeof e?.code === 'number' ? e.code : null,
    status: typeof e?.status === 'number' ? e.status : null,
  };
}

// What cashu-ts warned about during the run (a fallback it took, a setting it ignored): part of every answer.
const warnings = [];
const logger = {
  error() {},
  warn(message) {
    warnings.push(message);
  },
  info() {},
  debug() {},
  trace() {},
  log(level, message) {
    if (level === 'warn') warnings.push(message);
  },
};

async function wallet(job, options = {}) {
  const w = new Wallet(job.mint, { unit: job.unit, logger, ...options });
  await w.loadMint();
  return w;
}

// A wallet's seed: `seed` (hex), or BIP39's seed of `mnemonic` as any wallet app computes it (PBKDF2-HMAC-SHA512
// of the NFKD words, salt "mnemonic", 2048 rounds, 64 bytes), here with node's own crypto.
function seeded(job) {
  if (job.mnemonic) {
    return { bip39seed: Uint8Array.from(pbkdf2Sync(job.mnemonic.normalize('NFKD'), 'mnemonic', 2048, 64, 'sha512')) };
  }
  return { bip39seed: hexToBytes(job.seed) };
}

const scenarios = {
  // Keysets as cashu-ts loads them, and the ids it derives from their keys (its own NUT-02 code).
  async keysets(job) {
    const w = await wallet(job);
    const { keysets } = await w.mint.getKeySets();
    const result = [];
    for (const meta of keysets.filter((k) => k.unit === job.unit)) {
      const { keysets: [keys] } = await w.mint.getKeys(meta.id);
      const options = { unit: keys.unit, input_fee_ppk: meta.input_fee_ppk ?? 0, versionByte: parseInt(meta.id.slice(0, 2), 16) };
      if (keys.final_expiry) options.expiry = keys.final_expiry;
      // A key swapped for another must change the id: the check cashu-ts makes is not a formality.
      const amounts = Object.keys(keys.keys);
      const tampered = { ...keys.keys, [amounts[0]]: keys.keys[amounts[1]] };
      result.push({
        id: meta.id,
        unit: meta.unit,
        active: meta.active,
        input_fee_ppk: meta.input_fee_ppk ?? 0,
        derived_id: deriveKeysetId(keys.keys, options),
        verified: Keyset.verifyKeysetId({ ...keys, input_fee_ppk: meta.input_fee_ppk }),
        tampered_verified: Keyset.verifyKeysetId({ ...keys, input_fee_ppk: meta.input_fee_ppk, keys: tampered }),
        amounts, // strings: amounts above 2^53 do not survive a JS number
      });
    }
    return { wallet_keyset: w.keysetId, wallet_fee_ppk: w.getKeyset().fee, keysets: result };
  },

  // Receive a token (swap its proofs into fresh ones), DLEQ required on the way in.
  async receive(job) {
    const w = await wallet(job, job.seed ? seeded(job) : {});
    const token = job.token ?? getEncodedToken({ mint: job.mint, unit: job.unit, proofs: job.proofs });
    const config = { requireDleq: job.require_dleq ?? true };
    if (job.privkey) config.privkey = job.privkey;
    const received = await w.receive(token, config);
    return { proofs: proofsJson(received), fee: num(w.getFeesForProofs(getDecodedToken(token, [w.keysetId]).proofs)) };
  },

  // Send `amount` out of `proofs`; the sender pays the receiver's input fee when asked. cashu-ts first tries an
  // offline exact match, whose proofs leave without their DLEQ proofs; `swap` always swaps at the mint, so every
  // proof sent carries the DLEQ the mint just gave it.
  async send(job) {
    const w = await wallet(job);
    let builder = w.ops.send(job.amount, job.proofs).includeFees(job.include_fees ?? false);
    if (job.pubkey) builder = builder.asP2PK({ pubkey: job.pubkey });
    else builder = builder.asRandom();
    const { keep, send } = job.swap ? await w.completeSwap(await builder.prepare()) : await builder.run();
    return {
      keep: proofsJson(keep),
      send: proofsJson(send),
      token: getEncodedToken({ mint: job.mint, unit: job.unit, proofs: send }),
    };
  },

  // cashu-ts's DLEQ check (NUT-12, carol's side: with r) of each proof, against the mint's keys.
  async dleq(job) {
    const w = await wallet(job);
    return { valid: job.proofs.map((p) => hasValidDleq(p, w.getKeyset(p.id), { require: true })) };
  },

  // NUT-07 through cashu-ts.
  async checkstate(job) {
    const w = await wallet(job);
    const states = await w.checkProofsStates(job.proofs);
    return { states: states.map((s) => ({ Y: s.Y, state: s.state, witness: s.witness ?? null })) };
  },

  // A seeded wallet receives into deterministic outputs (NUT-13); a second wallet that has only the seed
  // finds them again with NUT-09 restore and learns where its counter must resume.
  async restore(job) {
    const first = await wallet(job, seeded(job));
    const reserved = [];
    first.on.countersReserved((c) => reserved.push({ keyset: c.keysetId, start: c.start, count: c.count }));
    const received = await first.ops.receive(getEncodedToken({ mint: job.mint, unit: job.unit, proofs: job.proofs }))
      .asDeterministic().requireDleq(true).run();
    const second = await wallet(job, seeded(job));
    const { proofs, lastCounterWithSignature } = await second.batchRestore(job.gap_limit ?? 20, job.batch_size ?? 10);
    return {
      received: proofsJson(received),
      reserved,
      restored: proofsJson(proofs),
      last_counter: lastCounterWithSignature ?? null,
    };
  },

  // A wallet that has nothing but its seed (or mnemonic): NUT-09 restore over its NUT-13 counters.
  async restore_only(job) {
    const w = await wallet(job, seeded(job));
    const { proofs, lastCounterWithSignature } = await w.batchRestore(job.gap_limit ?? 20, job.batch_size ?? 10);
    return { restored: proofsJson(proofs), last_counter: lastCounterWithSignature ?? null };
  },

  // Mint paid quotes of a custom method; with several quotes, one NUT-29 batch (check, then mint).
  async mint(job) {
    const w = await wallet(job);
    const config = job.privkey ? { privkey: job.privkey } : {};
    if (job.quotes.length === 1) {
      const [q] = job.quotes;
      const checked = await w.checkMintQuote(job.method, q.quote);
      const proofs = await w.mintProofs(job.method, q.amount, { ...checked, pubkey: q.pubkey }, config);
      return { checked: [checked], proofs: proofsJson(proofs) };
    }
    const checked = await w.checkMintQuoteBatch(job.method, job.quotes.map((q) => q.quote));
    const preview = await w.prepareBatchMint(
      job.method,
      checked.map((c, i) => ({ amount: job.quotes[i].amount, quote: { ...c, pubkey: job.quotes[i].pubkey } })),
      config,
    );
    const proofs = await w.completeBatchMint(preview);
    return { checked, proofs: proofsJson(proofs) };
  },

  // What upstream's miner wallet does, with cashu-ts: find its quotes by key with the signed lookup (draft NUT
  // "Mint Quote Lookup by Public Key", signed here from the draft's text with cashu-ts's BIP340), then mint them
  // all in one NUT-29 batch. `keys`: [{privkey, pubkey}]; `replay`: send the same signed lookup a second time.
  async sweep(job) {
    const w = await wallet(job);
    const info = await w.mint.getInfo();
    const mintPubkey = job.mint_pubkey ?? info.pubkey;
    const timestamp = job.timestamp ?? Math.floor(Date.now() / 1000);
    const nonce = randomBytes(16).toString('hex');
    const body = {
      pubkeys: job.keys.map((k) => k.pubkey),
      pubkey_signatures: job.keys.map((k) =>
        schnorrSignMessage('Cashu_MintQuoteLookup_v1' + mintPubkey + k.pubkey + nonce + String(timestamp), k.privkey)),
      timestamp,
      nonce,
    };
    const lookup = async () => {
      const resp = await fetch(`${job.mint}/v1/mint/quote/ehash/pubkey`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const answer = await resp.json();
      if (!resp.ok) throw new MintOperationError(answer.code, answer.detail);
      return answer.quotes;
    };
    const found = await lookup();
    const result = { max_age: info.nuts?.XX?.max_age ?? null, found: found.map((q) => q.quote) };
    if (job.replay) {
      try {
        await lookup();
        result.replay = null;
      } catch (e) {
        result.replay = errorJson(e);
      }
    }
    if (found.length === 0) return { ...result, proofs: [] };
    const checked = await w.checkMintQuoteBatch('ehash', found.map((q) => q.quote));
    const preview = await w.prepareBatchMint('ehash', checked.map((quote) => ({ amount: quote.amount, quote })),
      { privkey: job.keys.map((k) => k.privkey) });
    return { ...result, proofs: proofsJson(await w.completeBatchMint(preview)) };
  },

  // Raw requests through cashu-ts's own request layer, for refusals a well-behaved wallet never provokes.
  async request(job) {
    const w = await wallet(job);
    const m = w.mint;
    switch (job.call) {
      case 'swap':
        return await m.swap(job.body);
      case 'keys':
        return await m.getKeys(job.keyset_id);
      case 'check_mint_quote':
        return await m.checkMintQuote(job.method, job.quote);
      case 'restore':
        return await m.restore(job.body);
      default:
        throw new Error(`unknown call ${job.call}`);
    }
  },
};

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    process.stderr.write(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}\n`);
    process.exit(2);
  }
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  let answer;
  try {
    answer = await scenario(JSON.parse(input));
  } catch (e) {
    answer = { error: errorJson(e) };
  }
  answer.warnings = warnings;
  process.stdout.write(JSON.stringify(answer, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
}

await main();
