"""The official `google-genai` client.batches and client.files against the fake upstream's
Batch and Files API: inline and file input, get, list (paged by the SDK's pager), cancel,
inline results and a responses file, item-level errors and an expired batch."""
import json
import os
import tempfile

from google import genai
from google.genai import types

BASE, KEY = os.environ["FAKE_BASE"], os.environ["FAKE_KEY"]
MODEL = "gemini-3.1-flash-image"
client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=BASE, api_version="v1beta"))
IMAGE = types.GenerateContentConfig(response_modalities=["IMAGE"])


def wait(name):
    for _ in range(10):
        job = client.batches.get(name=name)
        if job.state.name not in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
            return job
    raise AssertionError(f"{name} never ended")


# Inline requests; one refused item and one upstream error come back per item.
job = client.batches.create(
    model=MODEL,
    src=[
        {"contents": [{"role": "user", "parts": [{"text": "A red fox"}]}], "config": IMAGE, "metadata": {"key": "fox"}},
        {"contents": [{"role": "user", "parts": [{"text": "[[fake:image_safety]]"}]}], "config": IMAGE, "metadata": {"key": "blocked"}},
        {"contents": [{"role": "user", "parts": [{"text": "[[fake:400]]"}]}], "config": IMAGE, "metadata": {"key": "bad"}},
    ],
    config={"display_name": "inline"},
)
assert job.name.startswith("batches/"), job
assert job.state.name == "JOB_STATE_PENDING", job.state
done = wait(job.name)
assert done.state.name == "JOB_STATE_SUCCEEDED", done.state
responses = done.dest.inlined_responses
assert len(responses) == 3, responses
fox = responses[0].response
assert any(p.inline_data for p in fox.candidates[0].content.parts), fox
assert responses[1].response.candidates[0].finish_reason.name == "IMAGE_SAFETY", responses[1]
assert responses[2].error is not None and responses[2].error.code == 400, responses[2]

# A JSONL file through the Files API (resumable upload), results as a responses file.
with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
    for i in range(3):
        request = {"contents": [{"role": "user", "parts": [{"text": f"poster {i}"}]}],
                   "generationConfig": {"responseModalities": ["IMAGE"]}}
        f.write(json.dumps({"key": f"p{i}", "request": request}) + "\n")
uploaded = client.files.upload(file=f.name, config={"mime_type": "application/jsonl", "display_name": "posters"})
assert uploaded.name.startswith("files/"), uploaded
job = client.batches.create(model=MODEL, src=uploaded.name, config={"display_name": "from a file"})
done = wait(job.name)
assert done.state.name == "JOB_STATE_SUCCEEDED", done.state
assert done.dest.file_name, done.dest
lines = client.files.download(file=done.dest.file_name).decode().splitlines()
assert len(lines) == 3, lines
assert all("response" in json.loads(line) for line in lines), lines[0][:200]

# Cancel, list, expiry.
job = client.batches.create(model=MODEL, src=[{"contents": "a cat", "config": IMAGE}], config={"display_name": "cancel me"})
client.batches.cancel(name=job.name)
assert client.batches.get(name=job.name).state.name == "JOB_STATE_CANCELLED"
names = [j.name for j in client.batches.list()]
assert job.name in names, names
# Paged as the SDK's pager pages: pageSize on every request, pageToken from nextPageToken.
pager = client.batches.list(config={"page_size": 2})
assert len(pager.page) == 2, pager.page
paged = [j.name for j in pager]
assert sorted(paged) == sorted(names) and len(paged) == 3, (paged, names)
assert len(set(paged)) == len(paged), paged
assert paged[0] == job.name, "newest first"
assert [j.display_name for j in client.batches.list(config={"page_size": 1})][0] == "cancel me"
job = client.batches.create(model=MODEL, src=[{"contents": "late", "config": IMAGE}], config={"display_name": "[[fake:expire]]"})
assert wait(job.name).state.name == "JOB_STATE_EXPIRED"
print("ok")
