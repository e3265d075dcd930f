data = {
    'prompt': 'Continue the mountain landscape with more peaks and a valley below',
    'direction': ['top', 'right'],
    'extension_ratio': 0.8
}
# --- end of the guide's sample; the request it implies and checks follow ---
import base64, io
from PIL import Image
files = {'image': open('landscape.jpg', 'rb')}
response = requests.post('/advanced/outpaint', files=files, data=data)
assert response.status_code == 200, response.text
out = Image.open(io.BytesIO(base64.b64decode(response.json()['images'][0])))
assert out.size == (1152, 648), out.size  # 640×360 grown by 0.8 to the top and right
