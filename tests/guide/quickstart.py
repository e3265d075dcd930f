import requests
import base64
import json

# Simple text-to-image generation
url = "http://localhost:8000/generate-image"
headers = {
    "Authorization": f"Bearer {your_api_key}",
    "Content-Type": "application/json"
}

data = {
    "prompt": "A professional photograph of a golden retriever sitting in a sunny park, shot with a DSLR camera, shallow depth of field, warm natural lighting",
    "model": "gemini-2.5-flash-image-preview"
}

response = requests.post(url, headers=headers, json=data)
result = response.json()

# Save the generated image
if result.get('images'):
    image_data = base64.b64decode(result['images'][0])
    with open('generated_image.png', 'wb') as f:
        f.write(image_data)
