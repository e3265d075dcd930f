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
