files = {'image': open('photo.jpg', 'rb')}
data = {
    'style': 'van_gogh',
    'style_strength': 0.8,
    'preserve_content': True
}
# --- end of the guide's sample; the request it implies and checks follow ---
response = requests.post('/advanced/style-transfer', files=files, data=data)
assert response.status_code == 200, response.text
assert response.json()['images']
import base64, io
from PIL import Image, ImageChops, ImageStat
styled = Image.open(io.BytesIO(base64.b64decode(response.json()['images'][0]))).convert('RGB')
source = Image.open('photo.jpg').convert('RGB').resize(styled.size)
mean_difference = sum(ImageStat.Stat(ImageChops.difference(styled, source)).mean) / 3
assert mean_difference > 8, f'the styled image is too close to its input ({mean_difference:.1f})'
