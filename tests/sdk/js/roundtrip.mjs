// The official AssemblyAI JavaScript SDK (npm `assemblyai`) against Lethe, unchanged but
// for baseUrl: list (paging through prev_url), get and delete.
//
// Usage: node roundtrip.mjs <base_url> <api_key> <transcript_id> <transcript_id>...
// (the transcripts completed by the caller, oldest first). Exits non-zero on a mismatch.
import assert from "node:assert/strict";
import { AssemblyAI } from "assemblyai";

const [base, apiKey, ...ids] = process.argv.slice(2);
const client = new AssemblyAI({ apiKey, baseUrl: base });

// List: newest first, one per page, following prev_url to the oldest.
let page = await client.transcripts.list({ limit: 1 });
const seen = [];
for (;;) {
  assert.equal(page.page_details.limit, 1);
  assert.equal(page.page_details.result_count, page.transcripts.length);
  for (const item of page.transcripts) {
    assert.ok(item.created instanceof Date && !isNaN(item.created), "created parses as a date");
    assert.equal(item.status, "completed");
    seen.push(item.id);
  }
  if (!page.page_details.prev_url) break;
  page = await client.transcripts.list(page.page_details.prev_url);
}
assert.deepEqual(seen, [...ids].reverse(), "every transcript once, newest first");

// Filters the SDK passes through.
const completed = await client.transcripts.list({ status: "completed", limit: 200 });
assert.equal(completed.transcripts.length, ids.length);
const throttled = await client.transcripts.list({ throttled_only: true });
assert.equal(throttled.transcripts.length, 0);

// Get.
const newest = ids[ids.length - 1];
const fetched = await client.transcripts.get(newest);
assert.equal(fetched.id, newest);
assert.equal(fetched.status, "completed");
assert.equal(fetched.text, "hello from javascript");

// Delete: the redacted transcript, AssemblyAI's sentinel text.
const deleted = await client.transcripts.delete(newest);
assert.equal(deleted.id, newest);
assert.equal(deleted.text, "Deleted by user.");
const again = await client.transcripts.get(newest);
assert.equal(again.text, "Deleted by user.");

// Another id is AssemblyAI's not-found error, thrown by the SDK.
await assert.rejects(client.transcripts.get("00000000-0000-0000-0000-000000000000"), /not found/i);

console.log("assemblyai js sdk roundtrip ok");
