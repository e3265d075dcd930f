"""google-genai, with its default settings, against the fake upstream itself: the fake must
accept what the SDK sends and refuse what Google refuses (a fake that accepts anything
proves nothing). The Rust side overloads gemini-3-pro-image before running this."""
import io
import os

from google import genai
from google.genai import errors, types
from PIL import Image

client = genai.Client(api_key=os.environ["FAKE_KEY"], http_options={"base_url": os.environ["FAKE_BASE"]})
BANANA = "gemini-nano-banana-2.1"

# The list, page by page through the SDK's pager.
names = [m.name for m in client.models.list(config={"page_size": 2})]
assert "models/" + BANANA in names and len(names) >= 4, names
assert client.models.get(model=BANANA).display_name == "Nano Banana 2.1"

# Nano Banana 2.1 at 2K on the flex tier, thinking hard.
answer = client.models.generate_content(
    model=BANANA, contents="A paper boat",
    config=types.GenerateContentConfig(
        response_modalities=["IMAGE"], service_tier="flex",
        thinking_config=types.ThinkingConfig(thinking_level="HIGH"),
        image_config=types.ImageConfig(aspect_ratio="8:1", image_size="2K")))
image = next(p.inline_data.data for p in answer.candidates[0].content.parts if p.inline_data)
assert Image.open(io.BytesIO(image)).size == (6144, 768), Image.open(io.BytesIO(image)).size


def refused(code, **call):
    try:
        client.models.generate_content(**call)
    except errors.APIError as e:
        assert e.code == code, (e.code, e)
        return e
    raise SystemExit(f"accepted, expected {code}: {call}")


# 512 is not one of 2.1's sizes; MEDIUM is not one of 3.1 Flash's levels; Pro takes none.
refused(400, model=BANANA, contents="x",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")))
refused(400, model="gemini-3.1-flash-image", contents="x",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="MEDIUM")))
refused(400, model="gemini-3-pro-image", contents="x",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="LOW")))
# A shut-down id is 404 as Google answers it, naming the API version the SDK used.
gone = refused(404, model="gemini-2.5-flash-image", contents="x")
assert "for API version v1," in gone.message, gone.message
# Overloaded Pro: 503 UNAVAILABLE.
busy = refused(503, model="gemini-3-pro-image", contents="x")
assert busy.status == "UNAVAILABLE", busy
print("google-genai against the fake: ok")
