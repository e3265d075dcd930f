"""The official `openai` package against imagegate (BASE and KEY from the environment)."""
import base64
import io
import os
import urllib.request

import openai
from openai import OpenAI
from PIL import Image

BASE, KEY = os.environ["IMAGEGATE_BASE"], os.environ["IMAGEGATE_KEY"]
client = OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0)


def image_of(b64):
    return Image.open(io.BytesIO(base64.b64decode(b64)))


# Generations: n fans out, size maps to the nearest aspect ratio and size.
result = client.images.generate(model="dall-e-3", prompt="A red fox in the snow", n=2, size="1024x1024",
                                response_format="b64_json")
assert len(result.data) == 2, result
assert image_of(result.data[0].b64_json).size == (1024, 1024)

wide = client.images.generate(prompt="A lighthouse at dusk", size="1792x1024", response_format="url")
url = wide.data[0].url
assert url.startswith(BASE + "/v1/files/"), url
with urllib.request.urlopen(url) as fetched:  # a signed URL needs no key
    assert Image.open(io.BytesIO(fetched.read())).size == (2752, 1536)

# Edits: one image, one image with an OpenAI mask (transparent = change), several images.
photo = io.BytesIO()
Image.new("RGB", (320, 240), (30, 120, 200)).save(photo, format="PNG")
mask = io.BytesIO()
m = Image.new("RGBA", (320, 240), (0, 0, 0, 255))
m.paste((0, 0, 0, 0), (100, 80, 220, 160))
m.save(mask, format="PNG")

edited = client.images.edit(image=("photo.png", photo.getvalue(), "image/png"), prompt="Make it sunset orange")
assert image_of(edited.data[0].b64_json).size == (320, 240)

masked = client.images.edit(image=("photo.png", photo.getvalue(), "image/png"),
                            mask=("mask.png", mask.getvalue(), "image/png"), prompt="A red balloon")
out = image_of(masked.data[0].b64_json).convert("RGB")
assert out.getpixel((5, 5)) == (30, 120, 200), "outside the mask the photo is untouched"

both = client.images.edit(image=[("a.png", photo.getvalue(), "image/png"), ("b.png", photo.getvalue(), "image/png")],
                          prompt="Blend the two")
assert both.data[0].b64_json

# The model list on /v1/models answers OpenAI's client in OpenAI's shape (google-genai
# calls the same path with its own key and gets Google's).
ids = [m.id for m in client.models.list()]
assert "gemini-nano-banana-2.1" in ids, ids
assert client.models.retrieve("gemini-3-pro-image").id == "gemini-3-pro-image"
try:
    client.models.retrieve("no-such-model")
    raise SystemExit("an unknown model was found")
except openai.NotFoundError as e:
    assert e.status_code == 404
    assert "does not exist" in e.body["message"], e.body

# The routing options ride along as extra body fields.
flex = client.images.generate(prompt="A paper boat", size="1024x1024", response_format="b64_json",
                              extra_body={"service_tier": "flex", "thinking_level": "high", "fallback": True})
assert flex.data[0].b64_json

# Errors arrive in OpenAI's shape, as the client's exception types.
try:
    client.images.generate(prompt="x" * 2100)
    raise SystemExit("a 2100-character prompt was accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400
    assert "too long" in e.body["message"], e.body
    assert e.body["param"] == "prompt", e.body

try:
    OpenAI(base_url=BASE + "/v1", api_key="not-a-key", max_retries=0).images.generate(prompt="a cat")
    raise SystemExit("a bad key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401
print("openai client: ok")
