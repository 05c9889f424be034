"""The official AssemblyAI Python SDK against Lethe, unchanged but for base_url.

Usage: python assemblyai_roundtrip.py <base_url> <api_key> <internal_token>
Creates a transcript from an uploaded file and one from a URL, completes them as the
pipeline would, then fetches, lists and deletes through the SDK. Exits non-zero on any
mismatch.
"""

import sys
import tempfile

import assemblyai as aai
import httpx

base, key, internal = sys.argv[1:4]
aai.settings.base_url = base
aai.settings.api_key = key
pipeline = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {internal}"})


def complete(transcript_id: str, text: str) -> None:
    pipeline.post(f"/internal/v1/transcripts/{transcript_id}/processing").raise_for_status()
    result = {
        "text": text,
        "words": [{"text": w, "start": i * 400, "end": i * 400 + 350, "confidence": 0.98} for i, w in enumerate(text.split())],
        "utterances": None,
        "confidence": 0.98,
        "audio_duration": 4,
    }
    pipeline.post(f"/internal/v1/transcripts/{transcript_id}/complete", json=result).raise_for_status()


transcriber = aai.Transcriber(config=aai.TranscriptionConfig(speech_model=aai.SpeechModel.universal, punctuate=True))

# From a local file: the SDK uploads it to /v2/upload, then creates the transcript.
with tempfile.NamedTemporaryFile(suffix=".wav") as audio:
    audio.write(b"RIFF....WAVEfmt fake audio bytes")
    audio.flush()
    from_file = transcriber.submit(audio.name)
assert from_file.status == aai.TranscriptStatus.queued, from_file.status
assert from_file.audio_url.startswith(base + "/v2/upload/"), from_file.audio_url

# From a URL.
from_url = transcriber.submit("https://example.com/sdk-call.mp3")
assert from_url.status == aai.TranscriptStatus.queued
assert from_url.id != from_file.id

complete(from_file.id, "hello from the file")
complete(from_url.id, "hello from the url")

fetched = aai.Transcript.get_by_id(from_url.id)
assert fetched.status == aai.TranscriptStatus.completed, fetched.status
assert fetched.text == "hello from the url", fetched.text
assert [w.text for w in fetched.words] == ["hello", "from", "the", "url"]
assert fetched.audio_duration == 4
assert fetched.json_response["speech_model"] == "universal"

page = transcriber.list_transcripts(aai.ListTranscriptParameters(limit=1))
assert page.page_details.result_count == 1
assert page.transcripts[0].id == from_url.id, "newest first"
older = transcriber.list_transcripts(aai.ListTranscriptParameters(limit=1, before_id=page.page_details.before_id_of_prev_url))
assert older.transcripts[0].id == from_file.id
assert older.page_details.prev_url is None

deleted = aai.Transcript.delete_by_id(from_url.id)
assert deleted.text == "Deleted by user.", deleted.text
assert deleted.audio_url == "http://deleted_by_user"
assert deleted.words is None
again = aai.Transcript.get_by_id(from_url.id)
assert again.text == "Deleted by user."
listed = {t.id: t for t in transcriber.list_transcripts().transcripts}
assert listed[from_url.id].audio_url == "http://deleted_by_user"

print("assemblyai sdk roundtrip ok")
