files = {'image': open('scene.jpg', 'rb')}
data = {
    'prompt': 'A red vintage car',
    'region_description': 'the blue car in the center of the image'
}
# --- end of the guide's sample; the request it implies and checks follow ---
response = requests.post('/advanced/inpaint', files=files, data=data)
assert response.status_code == 200, response.text
assert response.json()['images']
import base64, io
from PIL import Image, ImageChops, ImageStat
edited = Image.open(io.BytesIO(base64.b64decode(response.json()['images'][0]))).convert('RGB')
scene = Image.open('scene.jpg').convert('RGB').resize(edited.size)
mean_difference = sum(ImageStat.Stat(ImageChops.difference(edited, scene)).mean) / 3
assert mean_difference > 1, f'the answer is the scene unchanged ({mean_difference:.1f})'
