"""The official `google-genai` package against imagegate's native surface, configured as
README.md and docs/compat.md tell users: only `base_url`, so the SDK's own default API
version is used (`v1` since google-genai 3.6). IMAGEGATE_GENAI_API_VERSION pins one."""
import io
import os

from google import genai
from google.genai import errors, types
from PIL import Image

BASE, KEY = os.environ["IMAGEGATE_BASE"], os.environ["IMAGEGATE_KEY"]
PINNED = os.environ.get("IMAGEGATE_GENAI_API_VERSION")
MODEL = "gemini-nano-banana-2.1"
options = {"base_url": BASE}
if PINNED:
    options["api_version"] = PINNED
client = genai.Client(api_key=KEY, http_options=options)


def images(response):
    parts = response.candidates[0].content.parts or []
    return [p.inline_data.data for p in parts if p.inline_data and not p.thought]


# Text to image, with the image config carried through.
first = client.models.generate_content(
    model=MODEL, contents="A watercolor lighthouse on a cliff",
    config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"],
                                       image_config=types.ImageConfig(aspect_ratio="16:9")))
made = images(first)
assert made, first
assert Image.open(io.BytesIO(made[0])).size[0] > Image.open(io.BytesIO(made[0])).size[1], "16:9 is wide"

# An edit with an input image.
photo = io.BytesIO()
Image.new("RGB", (256, 256), (200, 40, 40)).save(photo, format="PNG")
edit = client.models.generate_content(
    model=MODEL, contents=[types.Part.from_bytes(data=photo.getvalue(), mime_type="image/png"), "Make it blue"])
assert images(edit), edit

# A two-turn chat: the SDK resends the history, signatures and all.
chat = client.chats.create(model=MODEL)
assert images(chat.send_message("Draw a cat on a sofa"))
assert images(chat.send_message("Now make the sofa green"))

# A stream.
chunks = list(client.models.generate_content_stream(model=MODEL, contents="A red kite in the sky"))
assert any(images(c) for c in chunks if c.candidates), chunks

# Service tier and thinking level, as the SDK sends them.
tiered = client.models.generate_content(
    model=MODEL, contents="A paper boat",
    config=types.GenerateContentConfig(service_tier="flex",
                                       thinking_config=types.ThinkingConfig(thinking_level="HIGH")))
assert images(tiered), tiered

# Nano Banana 2.1 has no 512: refused in Google's envelope.
try:
    client.models.generate_content(model=MODEL, contents="tiny",
                                   config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")))
    raise SystemExit("512 was accepted for Nano Banana 2.1")
except errors.ClientError as e:
    assert e.code == 400, e

# countTokens and the model list (the SDK's pager).
assert client.models.count_tokens(model=MODEL, contents="hello there world").total_tokens > 0
listed = [m.name for m in client.models.list()]
assert "models/" + MODEL in listed, listed
assert client.models.get(model=MODEL).name == "models/" + MODEL

# Errors in Google's envelope, as the SDK's exception types.
try:
    client.models.generate_content(model="no-such-model", contents="x")
    raise SystemExit("an unknown model was accepted")
except errors.ClientError as e:
    assert e.code == 404, e
stranger = genai.Client(api_key="not-a-key", http_options=options)
try:
    stranger.models.generate_content(model=MODEL, contents="x")
    raise SystemExit("a bad key was accepted")
except errors.ClientError as e:
    assert e.code == 401, e
print("google-genai client: ok")
