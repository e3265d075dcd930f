files = {'image': open('scene.jpg', 'rb')}
data = {
    'prompt': 'A red vintage car',
    'region_description': 'the blue car in the center of the image'
}
# --- end of the guide's sample; the request it implies and checks follow ---
response = requests.post('/advanced/inpaint', files=files, data=data)
assert response.status_code == 200, response.text
assert response.json()['images']
